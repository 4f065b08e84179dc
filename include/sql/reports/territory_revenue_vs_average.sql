-- Revenue per sales territory on the report date against its average over the 7 days before it (a day
-- without orders counts as 0). Customers without a sales rep count as "Unassigned", as in
-- sales_by_territory.sql. Read from the synced tables like the other sections (no dbt model: the dbt
-- DAG's parse budget is spent on the headline's mart, classicmodels_agg.daily_orders).
SELECT
  COALESCE(ofc.territory, 'Unassigned') AS territory,
  CAST(SUM(CASE WHEN o.orderDate = @report_date THEN od.quantityOrdered * od.priceEach ELSE 0 END) AS NUMERIC)
    AS report_date,
  CAST(SUM(CASE WHEN o.orderDate < @report_date THEN od.quantityOrdered * od.priceEach ELSE 0 END) / 7 AS NUMERIC)
    AS average_7_days
FROM {{ dataset }}.orders AS o
JOIN {{ dataset }}.orderdetails AS od ON od.orderNumber = o.orderNumber
JOIN {{ dataset }}.customers AS c ON c.customerNumber = o.customerNumber
LEFT JOIN {{ dataset }}.employees AS e ON e.employeeNumber = c.salesRepEmployeeNumber
LEFT JOIN {{ dataset }}.offices AS ofc ON ofc.officeCode = e.officeCode
WHERE o.orderDate BETWEEN DATE_SUB(@report_date, INTERVAL 7 DAY) AND @report_date
GROUP BY COALESCE(ofc.territory, 'Unassigned')
ORDER BY territory
