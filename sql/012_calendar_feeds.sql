-- 012: a calendar feed's URL can be replaced. A feed token (bot/links.py) names its person and the
-- generation it was made in; a new link for that person raises the generation here, and every
-- URL of an earlier one is refused from then on. No row is generation 0: the URL every person has
-- until their first new link (so the feeds handed out before this migration keep working).
CREATE TABLE calendar_feeds (
    kind        text        NOT NULL CHECK (kind IN ('dentist', 'patient')),
    owner_id    bigint      NOT NULL CHECK (owner_id > 0),
    generation  integer     NOT NULL CHECK (generation > 0),
    renewed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, owner_id)
);
