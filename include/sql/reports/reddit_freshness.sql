-- The newest scrape (the run time the scraper stores on every post it reads): older than the digest's
-- freshness allows before the end of the report date, and the e-mail says the data is late.
SELECT MAX(scraped_at) AS freshest FROM {{ reddit }}.posts
