-- Every human label, with when it was first loaded (new labels since the champion count from it).
SELECT example_id, text, label, rating, source, first_seen_at, labelled_by, labelled_at
FROM {{ dataset }}.labels
ORDER BY example_id
