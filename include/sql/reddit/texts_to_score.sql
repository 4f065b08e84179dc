-- The texts one scrape run stored (scraped_at = @scraped_at), with the hash and model of their
-- last score, so the caller scores only what is new, edited, or not yet seen by the current model.
-- Deleted and removed texts ("[deleted]", "[removed]") are not someone's words: never scored.
WITH texts AS (
  SELECT CONCAT(p.fullname, ':title') AS text_id, p.fullname, p.subreddit, 'title' AS kind, p.created_utc, p.title AS text
  FROM {{ dataset }}.posts AS p
  WHERE p.scraped_at = @scraped_at
  UNION ALL
  SELECT CONCAT(p.fullname, ':selftext'), p.fullname, p.subreddit, 'selftext', p.created_utc, p.selftext
  FROM {{ dataset }}.posts AS p
  WHERE p.scraped_at = @scraped_at AND p.status = 'visible' AND p.selftext != ''
  UNION ALL
  SELECT CONCAT(c.fullname, ':body'), c.fullname, c.subreddit, IF(c.depth = 0, 'comment', 'reply'), c.created_utc, c.body
  FROM {{ dataset }}.comments AS c
  WHERE c.scraped_at = @scraped_at AND c.status = 'visible'
)
SELECT t.text_id, t.fullname, t.subreddit, t.kind, t.created_utc, t.text,
  s.text_sha256 AS scored_sha256, s.model_version AS scored_model_version
FROM texts AS t
LEFT JOIN {{ dataset }}.sentiment AS s ON s.text_id = t.text_id
ORDER BY t.text_id
