select
  officeCode as office_code,
  city,
  country,
  territory
from {{ source('classicmodels', 'offices') }}
