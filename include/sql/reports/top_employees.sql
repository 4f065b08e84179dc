-- The top-5 sales reps, as rebuilt by the sync DAG's post-load aggregate.
SELECT
  CONCAT(first_name, ' ', last_name) AS employee,
  employee_number,
  orders,
  sales
FROM {{ agg_dataset }}.top_employees_by_sales
ORDER BY sales DESC, employee_number
