{#- Helpers shared by the models. -#}

{#- Exact decimal for money: BigQuery NUMERIC; DuckDB's widest decimal (the syncs load NUMERIC the same way). -#}
{% macro money_type() -%}
  {%- if target.type == 'bigquery' -%}numeric{%- else -%}decimal(38, 9){%- endif -%}
{%- endmacro %}

{#- The run's window as (start, end) date strings, end exclusive; none when not given.
    Both come from the Airflow run (dbt vars window_start/window_end): never from the clock. -#}
{% macro window_bounds() -%}
  {%- set start, end = var('window_start', none), var('window_end', none) -%}
  {%- if start is none and end is none -%}{{ return(none) }}{%- endif -%}
  {%- if start is none or end is none -%}
    {{ exceptions.raise_compiler_error("set both vars window_start and window_end (YYYY-MM-DD), got " ~ start ~ " and " ~ end) }}
  {%- endif -%}
  {%- set first = modules.datetime.date.fromisoformat(start | string) -%}
  {%- set last = modules.datetime.date.fromisoformat(end | string) -%}
  {%- if last <= first -%}
    {{ exceptions.raise_compiler_error("window_end " ~ end ~ " must be after window_start " ~ start) }}
  {%- endif -%}
  {{ return((first.isoformat(), last.isoformat())) }}
{%- endmacro %}

{#- The days of the window as YYYY-MM-DD strings (empty without a window). -#}
{% macro window_days() -%}
  {%- set bounds = window_bounds() -%}
  {%- set days = [] -%}
  {%- if bounds is not none -%}
    {%- set first = modules.datetime.date.fromisoformat(bounds[0]) -%}
    {%- for offset in range((modules.datetime.date.fromisoformat(bounds[1]) - first).days) -%}
      {%- do days.append((first + modules.datetime.timedelta(days=offset)).isoformat()) -%}
    {%- endfor -%}
  {%- endif -%}
  {{ return(days) }}
{%- endmacro %}

{#- BigQuery insert_overwrite: the window's partitions, replaced whole (also when a day lost all its rows). -#}
{% macro window_partitions() -%}
  {%- set parts = [] -%}
  {%- for day in window_days() -%}{%- do parts.append("date '" ~ day ~ "'") -%}{%- endfor -%}
  {{ return(parts if parts else none) }}
{%- endmacro %}
