-- The five sales reps with the highest order value (quantity x price) over all orders: the query the
-- sync's post_load ran before the aggregate became the dbt model include/dbt/models/marts/
-- top_employees_by_sales.sql. Kept as the reference the tests compare that model with, on both engines.
SELECT
  e.employeeNumber AS employee_number,
  e.firstName AS first_name,
  e.lastName AS last_name,
  CAST(SUM(od.quantityOrdered * od.priceEach) AS NUMERIC) AS sales,
  COUNT(DISTINCT o.orderNumber) AS orders
FROM {{ dataset }}.employees AS e
JOIN {{ dataset }}.customers AS c ON c.salesRepEmployeeNumber = e.employeeNumber
JOIN {{ dataset }}.orders AS o ON o.customerNumber = c.customerNumber
JOIN {{ dataset }}.orderdetails AS od ON od.orderNumber = o.orderNumber
GROUP BY employee_number, first_name, last_name
ORDER BY sales DESC, employee_number
LIMIT 5
