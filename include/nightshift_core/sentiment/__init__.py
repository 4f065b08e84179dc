"""Sentiment scoring: the seed's TextBlob and VADER rules, plus a seam for a trained model."""
