-- One row per day, days without orders included (zeros): revenue, orders, average order value and
-- new customers (customers whose first order ever is that day). The daily sales report's headline
-- reads it. Partitioned by day and built incrementally like daily_sales: each run replaces exactly
-- the days of its window (dbt vars window_start/window_end), every day of it, with or without orders;
-- the first build (or --full-refresh) covers the first to the last order day.
{{ config(**day_partitioned('order_date')) }}
{{ require_window('daily_orders') }}

with days as (
  {{ model_days(ref('stg_orders'), 'order_date') }}
),
order_values as (
  -- An order without lines counts as an order worth 0.
  select o.order_number, o.order_date, o.customer_number,
    coalesce(sum(od.quantity_ordered * od.price_each), 0) as revenue
  from {{ ref('stg_orders') }} as o
  left join {{ ref('stg_orderdetails') }} as od on od.order_number = o.order_number
  group by o.order_number, o.order_date, o.customer_number
),
first_orders as (
  select customer_number, min(order_date) as first_order_date
  from {{ ref('stg_orders') }}
  group by customer_number
)
select
  d.day as order_date,
  count(v.order_number) as orders,
  cast(coalesce(sum(v.revenue), 0) as {{ money_type() }}) as revenue,
  cast(case when count(v.order_number) = 0 then null
       else coalesce(sum(v.revenue), 0) / count(v.order_number) end as {{ money_type() }}) as average_order_value,
  count(distinct case when f.first_order_date = d.day then v.customer_number end) as new_customers
from days as d
left join order_values as v on v.order_date = d.day
left join first_orders as f on f.customer_number = v.customer_number
group by d.day
