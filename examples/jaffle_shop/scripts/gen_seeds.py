#!/usr/bin/env python3
"""Deterministically (re)generate the seed CSVs of the jaffle_shop example.

Uses a fixed linear congruential generator so output is byte-identical across
Python versions. Run from anywhere: python3 scripts/gen_seeds.py
"""
import datetime
import os

N_CUSTOMERS = 100
N_ORDERS = 500
N_EXTRA_PAYMENTS = 100  # orders that get a second payment -> 600 payments

FIRST = ["Ada", "Bram", "Chloe", "Dario", "Elif", "Femi", "Greta", "Hugo",
         "Ines", "Jonas", "Kira", "Luca", "Maya", "Nils", "Olga", "Pavel",
         "Quinn", "Rosa", "Sami", "Tove", "Uma", "Viktor", "Wen", "Yara", "Zeno"]
LAST = ["A.", "B.", "C.", "D.", "E.", "F.", "G.", "H.", "K.", "L.", "M.",
        "N.", "O.", "P.", "R.", "S.", "T.", "V.", "W.", "Z."]
STATUSES = ["placed", "shipped", "completed", "completed", "completed",
            "completed", "return_pending", "returned"]
METHODS = ["credit_card", "credit_card", "bank_transfer", "gift_card"]
EXTRA_METHODS = ["coupon", "gift_card"]


class Lcg:
    def __init__(self, seed):
        self.state = seed & 0xFFFFFFFF

    def next(self, n):
        # Numerical Recipes constants; high bits are the usable ones.
        self.state = (1664525 * self.state + 1013904223) & 0xFFFFFFFF
        return (self.state >> 8) % n


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "seeds")
    rng = Lcg(20240101)

    with open(os.path.join(out, "raw_customers.csv"), "w", newline="\n") as f:
        f.write("id,first_name,last_name\n")
        for i in range(1, N_CUSTOMERS + 1):
            f.write(f"{i},{FIRST[rng.next(len(FIRST))]},{LAST[rng.next(len(LAST))]}\n")

    start = datetime.date(2024, 1, 1)
    orders = []
    with open(os.path.join(out, "raw_orders.csv"), "w", newline="\n") as f:
        f.write("id,user_id,order_date,status\n")
        day = 0
        for i in range(1, N_ORDERS + 1):
            day += rng.next(2)  # dates are non-decreasing with order id
            # customers 91..100 never order, so the mart has zero-order rows
            user = 1 + rng.next(N_CUSTOMERS - 10)
            status = STATUSES[rng.next(len(STATUSES))]
            orders.append(i)
            f.write(f"{i},{user},{start + datetime.timedelta(days=day)},{status}\n")

    with open(os.path.join(out, "raw_payments.csv"), "w", newline="\n") as f:
        f.write("id,order_id,payment_method,amount\n")
        pid = 0
        for o in orders:
            pid += 1
            amount = 100 * (1 + rng.next(30))  # whole currency units, in cents
            f.write(f"{pid},{o},{METHODS[rng.next(len(METHODS))]},{amount}\n")
        # every 5th order gets an extra coupon / gift card payment
        for o in orders[4::5][:N_EXTRA_PAYMENTS]:
            pid += 1
            amount = 100 * (1 + rng.next(10))
            f.write(f"{pid},{o},{EXTRA_METHODS[rng.next(2)]},{amount}\n")


if __name__ == "__main__":
    main()
