-- The ten most negative texts (VADER compound) of the seven days up to the report date.
-- Reddit text is hostile data: the report layer escapes it for Excel, Sheets and e-mail.
SELECT
  s.subreddit,
  s.kind,
  s.vader_compound,
  s.vader_label,
  s.textblob_label,
  COALESCE(p.title, c.body) AS text,
  s.fullname
FROM {{ reddit }}.sentiment AS s
LEFT JOIN {{ reddit }}.posts AS p ON p.fullname = s.fullname AND s.kind = 'title'
LEFT JOIN {{ reddit }}.comments AS c ON c.fullname = s.fullname
WHERE DATE(s.created_utc) BETWEEN DATE_SUB(@report_date, INTERVAL 6 DAY) AND @report_date
  AND s.kind IN ('title', 'comment', 'reply')
ORDER BY s.vader_compound, s.text_id
LIMIT {{ limit }}
