-- One labelling request as pick_texts and label_texts recorded it: its texts and their answers.
SELECT request, field, key, text_id, subreddit, kind, text, priority, reasons, picked_at,
  answer, answered_by_id, answered_by_name, answered_at
FROM {{ dataset }}.label_requests
WHERE request = @request
ORDER BY field
