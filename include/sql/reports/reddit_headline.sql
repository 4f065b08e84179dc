-- The digest's headline days: texts per day over every subreddit with VADER's labels, from
-- reddit.daily_sentiment, for the 62 days up to the report date (a day without texts has no row and
-- counts as zero); the report compares the report date with the day before, the same weekday a week
-- before, the 7 days before and the previous month.
SELECT
  day,
  SUM(texts) AS texts,
  SUM(positive) AS positive,
  SUM(neutral) AS neutral,
  SUM(negative) AS negative
FROM {{ reddit }}.daily_sentiment
WHERE scorer = 'vader'
  AND day BETWEEN DATE_SUB(@report_date, INTERVAL 62 DAY) AND @report_date
GROUP BY day
ORDER BY day
