-- One row per customer, renamed to the project's conventions.
select
    id as customer_id,
    first_name,
    last_name
from {{ ref('raw_customers') }}
