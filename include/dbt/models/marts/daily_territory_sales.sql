-- Revenue and orders per order day and sales territory (customers without a sales rep: 'Unassigned'),
-- only days with orders. The daily sales report's territory chart reads it. Partitioned by day and
-- built incrementally like daily_sales.
{{ config(**day_partitioned('order_date')) }}
{{ require_window('daily_territory_sales') }}

select
  o.order_date,
  coalesce(ofc.territory, 'Unassigned') as territory,
  count(distinct o.order_number) as orders,
  cast(sum(od.quantity_ordered * od.price_each) as {{ money_type() }}) as revenue
from {{ ref('stg_orders') }} as o
join {{ ref('stg_orderdetails') }} as od on od.order_number = o.order_number
join {{ ref('stg_customers') }} as c on c.customer_number = o.customer_number
left join {{ ref('stg_employees') }} as e on e.employee_number = c.sales_rep_employee_number
left join {{ ref('stg_offices') }} as ofc on ofc.office_code = e.office_code
{%- if is_incremental() %}
{%- set w = window_bounds() %}
where o.order_date >= date '{{ w[0] }}' and o.order_date < date '{{ w[1] }}'
{%- endif %}
group by o.order_date, coalesce(ofc.territory, 'Unassigned')
