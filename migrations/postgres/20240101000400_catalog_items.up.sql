-- catalog.items: what the Catalog service sells.
CREATE TABLE catalog.items (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    sku            varchar(64)  NOT NULL,
    name           varchar(255) NOT NULL CHECK (length(btrim(name)) > 0),
    description    text,
    -- e.g. 'women.dresses.evening'; queried with <@ and ~ (GiST below)
    category_path  ltree NOT NULL,
    price          numeric(12, 2) NOT NULL CHECK (price >= 0),
    currency       char(3) NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    attributes     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),

    -- Timestamps
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz NULL,

    -- Audit
    created_by     uuid REFERENCES shared.users (id),
    updated_by     uuid REFERENCES shared.users (id)
);

-- The table is created above, so plain CREATE INDEX blocks nobody.
CREATE UNIQUE INDEX idx_items_sku ON catalog.items (sku) WHERE deleted_at IS NULL;
CREATE INDEX idx_items_category_path ON catalog.items USING gist (category_path);
CREATE INDEX idx_items_name_trgm ON catalog.items USING gin (name gin_trgm_ops);
CREATE INDEX idx_items_attributes ON catalog.items USING gin (attributes jsonb_path_ops);

CREATE TRIGGER items_set_updated_at
    BEFORE UPDATE ON catalog.items
    FOR EACH ROW EXECUTE FUNCTION shared.set_updated_at();

COMMENT ON TABLE catalog.items IS 'Catalog items; soft-deleted by deleted_at';
COMMENT ON COLUMN catalog.items.category_path IS 'Category as an ltree path, e.g. women.dresses.evening';
COMMENT ON COLUMN catalog.items.price IS 'Price in currency units, two decimals, never negative';
COMMENT ON COLUMN catalog.items.attributes IS 'Free-form attributes (size, colour, material...), a JSON object';
