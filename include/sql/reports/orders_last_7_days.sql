-- Orders placed in the seven days up to the report date (often empty for old sample data:
-- the report then says so instead of failing).
SELECT
  o.orderNumber AS order_number,
  o.orderDate AS order_date,
  o.status AS status,
  c.customerName AS customer,
  COUNT(*) AS lines,
  CAST(SUM(od.quantityOrdered * od.priceEach) AS NUMERIC) AS sales
FROM {{ dataset }}.orders AS o
JOIN {{ dataset }}.customers AS c ON c.customerNumber = o.customerNumber
JOIN {{ dataset }}.orderdetails AS od ON od.orderNumber = o.orderNumber
WHERE o.orderDate BETWEEN DATE_SUB(@report_date, INTERVAL 6 DAY) AND @report_date
GROUP BY o.orderNumber, o.orderDate, o.status, c.customerName
ORDER BY order_date DESC, order_number
