-- The top-5 sales reps: the dbt model classicmodels_agg.top_employees_by_sales (include/dbt).
SELECT
  CONCAT(first_name, ' ', last_name) AS employee,
  employee_number,
  orders,
  sales
FROM {{ agg_dataset }}.top_employees_by_sales
ORDER BY sales DESC, employee_number
LIMIT {{ limit }}
