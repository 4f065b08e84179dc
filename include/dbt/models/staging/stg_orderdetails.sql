select
  orderNumber as order_number,
  productCode as product_code,
  quantityOrdered as quantity_ordered,
  priceEach as price_each,
  orderLineNumber as line_number
from {{ source('classicmodels', 'orderdetails') }}
