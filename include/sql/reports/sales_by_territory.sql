-- Order value (quantity x price) by sales territory and product line, for every order
-- placed on or before the report date. Customers without a sales rep count as "Unassigned".
SELECT
  COALESCE(ofc.territory, 'Unassigned') AS territory,
  p.productLine AS product_line,
  CAST(SUM(od.quantityOrdered * od.priceEach) AS NUMERIC) AS sales
FROM {{ dataset }}.orderdetails AS od
JOIN {{ dataset }}.orders AS o ON o.orderNumber = od.orderNumber
JOIN {{ dataset }}.products AS p ON p.productCode = od.productCode
JOIN {{ dataset }}.customers AS c ON c.customerNumber = o.customerNumber
LEFT JOIN {{ dataset }}.employees AS e ON e.employeeNumber = c.salesRepEmployeeNumber
LEFT JOIN {{ dataset }}.offices AS ofc ON ofc.officeCode = e.officeCode
WHERE o.orderDate <= @report_date
GROUP BY COALESCE(ofc.territory, 'Unassigned'), p.productLine
