-- The customers with the highest order value up to the report date, as many as the section's limit.
SELECT
  c.customerName AS customer,
  c.country AS country,
  COALESCE(ofc.territory, 'Unassigned') AS territory,
  COUNT(DISTINCT o.orderNumber) AS orders,
  CAST(SUM(od.quantityOrdered * od.priceEach) AS NUMERIC) AS sales
FROM {{ dataset }}.customers AS c
JOIN {{ dataset }}.orders AS o ON o.customerNumber = c.customerNumber
JOIN {{ dataset }}.orderdetails AS od ON od.orderNumber = o.orderNumber
LEFT JOIN {{ dataset }}.employees AS e ON e.employeeNumber = c.salesRepEmployeeNumber
LEFT JOIN {{ dataset }}.offices AS ofc ON ofc.officeCode = e.officeCode
WHERE o.orderDate <= @report_date
GROUP BY c.customerNumber, c.customerName, c.country, COALESCE(ofc.territory, 'Unassigned')
ORDER BY sales DESC, customer
LIMIT {{ limit }}
