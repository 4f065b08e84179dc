-- Each subreddit's share of positive, neutral and negative texts (VADER's labels) per day over the
-- 14 days up to the report date: the daily counts of reddit.daily_sentiment divided by its texts.
SELECT
  subreddit,
  day,
  CAST(positive AS FLOAT64) / texts AS positive,
  CAST(neutral AS FLOAT64) / texts AS neutral,
  CAST(negative AS FLOAT64) / texts AS negative
FROM {{ reddit }}.daily_sentiment
WHERE scorer = 'vader' AND texts > 0
  AND day BETWEEN DATE_SUB(@report_date, INTERVAL 13 DAY) AND @report_date
ORDER BY subreddit, day
