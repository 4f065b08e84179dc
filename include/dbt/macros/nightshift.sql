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

{#- One row per day from first to last (both date expressions, inclusive), as column `day`. -#}
{% macro day_spine(first, last) -%}
  {%- if target.type == 'bigquery' -%}
    select day from unnest(generate_date_array({{ first }}, {{ last }})) as day
  {%- else -%}
    select cast(generate_series as date) as day
    from generate_series(cast({{ first }} as timestamp), cast({{ last }} as timestamp), interval 1 day)
  {%- endif -%}
{%- endmacro %}

{#- The days a partitioned model covers: the run's window, or (first build) first to last day of `column` in `relation`. -#}
{% macro model_days(relation, column) -%}
  {%- set w = window_bounds() if is_incremental() else none -%}
  {%- if w is not none -%}
    {{ day_spine("date '" ~ w[0] ~ "'", "date_sub(date '" ~ w[1] ~ "', interval 1 day)" if target.type == 'bigquery' else "date '" ~ w[1] ~ "' - interval 1 day") }}
  {%- else -%}
    {{ day_spine("(select min(" ~ column ~ ") from " ~ relation ~ ")", "(select max(" ~ column ~ ") from " ~ relation ~ ")") }}
  {%- endif -%}
{%- endmacro %}

{#- The config of a model partitioned by day and rebuilt per run window (daily_sales and the other daily marts):
    BigQuery replaces the window's partitions, DuckDB deletes the window's days first and appends them. -#}
{% macro day_partitioned(column) -%}
  {{ return({
    'materialized': 'incremental',
    'incremental_strategy': ('insert_overwrite' if target.type == 'bigquery' else 'append'),
    'partition_by': ({'field': column, 'data_type': 'date', 'granularity': 'day'} if target.type == 'bigquery' else none),
    'partitions': (window_partitions() if target.type == 'bigquery' else none),
    'on_schema_change': 'fail',
    'pre_hook': [
      "{% if is_incremental() and target.type != 'bigquery' %}{% set w = window_bounds() %}"
      "delete from {{ this }} where " ~ column ~ " >= date '{{ w[0] }}' and " ~ column ~ " < date '{{ w[1] }}'"
      "{% endif %}"
    ],
  }) }}
{%- endmacro %}

{#- An incremental run of a day-partitioned model needs the run's window; never the clock. -#}
{% macro require_window(model_name) -%}
  {%- if is_incremental() and window_bounds() is none %}
    {{ exceptions.raise_compiler_error(
        model_name ~ " is incremental: pass vars window_start and window_end (YYYY-MM-DD, end exclusive); "
        "the Airflow DAG does, or use --full-refresh") }}
  {%- endif %}
{%- endmacro %}
