-- Scraped texts (titles, self-text, comments, replies) scored in [@since, @until], with every
-- scorer's label and score: the weak-label candidates, the "recent texts" of the drift check and
-- the labelling DAG's candidates (where they come from, where the scorers disagree or are unsure).
WITH texts AS (
  SELECT CONCAT(p.fullname, ':title') AS text_id, p.title AS text
  FROM {{ dataset }}.posts AS p
  UNION ALL
  SELECT CONCAT(p.fullname, ':selftext'), p.selftext
  FROM {{ dataset }}.posts AS p
  WHERE p.status = 'visible' AND p.selftext != ''
  UNION ALL
  SELECT CONCAT(c.fullname, ':body'), c.body
  FROM {{ dataset }}.comments AS c
  WHERE c.status = 'visible'
)
SELECT t.text_id, t.text, s.vader_compound, s.textblob_polarity, s.subreddit, s.kind,
  s.vader_label, s.textblob_label, s.model_label, s.model_score
FROM texts AS t
JOIN {{ dataset }}.sentiment AS s ON s.text_id = t.text_id
WHERE s.scored_at >= @since AND s.scored_at <= @until
ORDER BY t.text_id
