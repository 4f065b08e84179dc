select
  employeeNumber as employee_number,
  firstName as first_name,
  lastName as last_name,
  officeCode as office_code,
  reportsTo as reports_to,
  jobTitle as job_title
from {{ source('classicmodels', 'employees') }}
