{#- Conformity audits. Each returns the offending rows (kept in nightshift_audit by store_failures). -#}

{#- Strings longer than the declared length (e.g. the source's VARCHAR(n)). -#}
{% test max_length(model, column_name, length) %}
select *
from {{ model }}
where length({{ column_name }}) > {{ length }}
{% endtest %}

{#- Values outside [min_value, max_value]; NULL passes (pair it with not_null). -#}
{% test value_between(model, column_name, min_value, max_value) %}
select *
from {{ model }}
where {{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }}
{% endtest %}

{#- Rows whose share of filled-in columns (not NULL, not blank) is below min_score (0..1). -#}
{% test completeness(model, columns, min_score) %}
with scored as (
  select
    *,
    (
      {%- for column in columns %}
      case when {{ column }} is null or trim(cast({{ column }} as {{ dbt.type_string() }})) = '' then 0 else 1 end
      {%- if not loop.last %} +{% endif %}
      {%- endfor %}
    ) / {{ columns | length }}.0 as completeness_score
  from {{ model }}
)
select * from scored where completeness_score < {{ min_score }}
{% endtest %}

{#- Rows whose combination of columns is not unique (every copy is returned). -#}
{% test unique_combination(model, columns) %}
with counted as (
  select {{ columns | join(', ') }}, count(*) as copies
  from {{ model }}
  group by {{ columns | join(', ') }}
  having count(*) > 1
)
select * from counted
{% endtest %}
