CREATE VIEW gold_customer AS SELECT id, name FROM customer WHERE tier = 'gold';
CREATE FUNCTION customer_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM customer $$;
CREATE SEQUENCE invoice_number START 1000;
CREATE TABLE invoice (id bigint PRIMARY KEY DEFAULT nextval('invoice_number'), customer_id bigint REFERENCES customer (id), total numeric(12, 2));
INSERT INTO invoice (customer_id, total) SELECT id, 10.5 FROM customer;
ALTER TABLE customer DROP COLUMN tier CASCADE;
CREATE VIEW customer_total AS SELECT c.name, sum(i.total) AS total FROM customer c JOIN invoice i ON i.customer_id = c.id GROUP BY c.name;
