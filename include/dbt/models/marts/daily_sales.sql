-- Sales per order day and product line, partitioned by day and built incrementally: each run
-- replaces exactly the days of its window (dbt vars window_start/window_end, given by the Airflow
-- run), so re-running a day leaves one copy of it. The first build (or --full-refresh) takes every day.
{{ config(**day_partitioned('order_date')) }}
{{ require_window('daily_sales') }}

select
  o.order_date,
  p.product_line,
  count(distinct o.order_number) as orders,
  sum(od.quantity_ordered) as quantity,
  cast(sum(od.quantity_ordered * od.price_each) as {{ money_type() }}) as sales
from {{ ref('stg_orders') }} as o
join {{ ref('stg_orderdetails') }} as od on od.order_number = o.order_number
join {{ ref('stg_products') }} as p on p.product_code = od.product_code
{%- if is_incremental() %}
{%- set w = window_bounds() %}
where o.order_date >= date '{{ w[0] }}' and o.order_date < date '{{ w[1] }}'
{%- endif %}
group by o.order_date, p.product_line
