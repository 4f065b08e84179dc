select
  productCode as product_code,
  productName as product_name,
  productLine as product_line
from {{ source('classicmodels', 'products') }}
