select
  customerNumber as customer_number,
  customerName as customer_name,
  country,
  salesRepEmployeeNumber as sales_rep_employee_number,
  creditLimit as credit_limit
from {{ source('classicmodels', 'customers') }}
