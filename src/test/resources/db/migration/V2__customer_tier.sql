ALTER TABLE customer ADD COLUMN tier text NOT NULL DEFAULT 'basic';
CREATE INDEX customer_tier ON customer (tier);
UPDATE customer SET tier = 'gold' WHERE name = 'ada';
