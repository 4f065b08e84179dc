"""Reddit scraping logic without Airflow: the reddit.yaml definition and praw objects -> rows."""
