-- One row per customer with order history and lifetime value.
with order_summary as (
    select
        customer_id,
        min(order_date) as first_order,
        max(order_date) as most_recent_order,
        count(*) as number_of_orders,
        sum(amount) as lifetime_value
    from {{ ref('orders') }}
    where status <> 'returned'
    group by customer_id
)

select
    c.customer_id,
    c.first_name,
    c.last_name,
    s.first_order,
    s.most_recent_order,
    coalesce(s.number_of_orders, 0) as number_of_orders,
    coalesce(s.lifetime_value, 0) as customer_lifetime_value
from {{ ref('stg_customers') }} as c
left join order_summary as s
    on c.customer_id = s.customer_id
