-- The five sales reps with the highest order value (quantity x price) over all orders.
-- Moved here from the sync definition's post_load; same columns, same rows.
select
  e.employee_number,
  e.first_name,
  e.last_name,
  cast(sum(od.quantity_ordered * od.price_each) as {{ money_type() }}) as sales,
  count(distinct o.order_number) as orders
from {{ ref('stg_employees') }} as e
join {{ ref('stg_customers') }} as c on c.sales_rep_employee_number = e.employee_number
join {{ ref('stg_orders') }} as o on o.customer_number = c.customer_number
join {{ ref('stg_orderdetails') }} as od on od.order_number = o.order_number
group by e.employee_number, e.first_name, e.last_name
order by sales desc, e.employee_number
limit 5
