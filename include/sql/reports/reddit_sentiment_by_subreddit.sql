-- Labels per subreddit and scorer for texts written in the seven days up to the report date.
SELECT
  subreddit,
  scorer,
  SUM(texts) AS texts,
  SUM(positive) AS positive,
  SUM(negative) AS negative,
  SUM(neutral) AS neutral,
  ROUND(SUM(mean_vader_compound * texts) / SUM(texts), 3) AS mean_vader_compound
FROM {{ reddit }}.daily_sentiment
WHERE day BETWEEN DATE_SUB(@report_date, INTERVAL 6 DAY) AND @report_date
GROUP BY subreddit, scorer
ORDER BY subreddit, scorer
