-- Full-text search over plaintext messages (C9): a GIN expression index with the
-- language-neutral `simple` configuration (lowercased words, no stemming, no stop
-- words). Only live plaintext messages are indexed; queries repeat the predicate.
CREATE INDEX messages_search ON messages
    USING GIN (to_tsvector('simple', body_text))
    WHERE body_text IS NOT NULL AND NOT deleted;
