-- Per subreddit, UTC day the text was written and scorer: how many texts got each label, and
-- the mean VADER compound / TextBlob polarity. One row per scorer ("textblob", "vader", and
-- "model" with its version once a trained model scores texts), read by the report digest.
WITH labelled AS (
  SELECT subreddit, DATE(created_utc) AS day, 'textblob' AS scorer, CAST(NULL AS STRING) AS model_version,
    textblob_label AS label, vader_compound, textblob_polarity
  FROM {{ dataset }}.sentiment
  UNION ALL
  SELECT subreddit, DATE(created_utc), 'vader', CAST(NULL AS STRING), vader_label, vader_compound, textblob_polarity
  FROM {{ dataset }}.sentiment
  UNION ALL
  SELECT subreddit, DATE(created_utc), 'model', model_version, model_label, vader_compound, textblob_polarity
  FROM {{ dataset }}.sentiment
  WHERE model_label IS NOT NULL
)
SELECT
  subreddit,
  day,
  scorer,
  model_version,
  COUNT(*) AS texts,
  CAST(COUNTIF(label = 'positive') AS INT64) AS positive,
  CAST(COUNTIF(label = 'negative') AS INT64) AS negative,
  CAST(COUNTIF(label = 'neutral') AS INT64) AS neutral,
  AVG(vader_compound) AS mean_vader_compound,
  AVG(textblob_polarity) AS mean_textblob_polarity
FROM labelled
GROUP BY subreddit, day, scorer, model_version
ORDER BY subreddit, day, scorer, model_version
