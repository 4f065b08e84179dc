-- Revenue per day over the 30 days up to the report date (classicmodels_agg.daily_orders).
SELECT
  order_date,
  revenue
FROM {{ agg_dataset }}.daily_orders
WHERE order_date BETWEEN DATE_SUB(@report_date, INTERVAL 29 DAY) AND @report_date
ORDER BY order_date
