-- Rows that compress the way an application's tables do (zstd about 3.5×, lz4 about 2.5× on a whole
-- copy), not pgbench's blank filler (over 20×): ids, timestamps, a few statuses and currencies, amounts,
-- e-mail addresses, a random uuid, and a free-text note of 5–24 words from a small vocabulary, with two
-- secondary indexes. psql -v rows=N.
CREATE TABLE IF NOT EXISTS bench_orders (
  id bigint PRIMARY KEY, customer_id int NOT NULL, created_at timestamptz NOT NULL, status text NOT NULL,
  amount numeric(12,2) NOT NULL, currency char(3) NOT NULL, email text NOT NULL, reference uuid NOT NULL, note text
);
INSERT INTO bench_orders
WITH words AS (SELECT ARRAY['the','order','was','shipped','to','customer','after','payment','please','call','back','address','changed','gift','wrap','express','delivery','on','monday','tuesday','friday','box','damaged','replace','item','size','colour','blue','red','large','small','refund','requested','by','email','phone','note','from','support','team','priority','standard','warehouse','north','south','pickup','store','invoice','attached','thanks'] AS w)
SELECT g, (random() * 200000)::int, timestamptz '2024-01-01' + random() * interval '700 days',
  (ARRAY['new','paid','shipped','delivered','cancelled','refunded'])[1 + (random() * 5)::int],
  round((random() * 1000)::numeric, 2), (ARRAY['EUR','USD','GBP','CHF'])[1 + (random() * 3)::int],
  'user' || (random() * 200000)::int || '@' || (ARRAY['example.com','mail.example.org','corp.example.net'])[1 + (random() * 2)::int],
  md5(g::text || random()::text)::uuid,
  (SELECT string_agg(x.w[1 + (random() * (array_length(x.w, 1) - 1))::int], ' ') FROM words x, generate_series(1, 5 + (g % 20)))
FROM generate_series(1, :rows) g;
CREATE INDEX IF NOT EXISTS bench_orders_customer ON bench_orders (customer_id);
CREATE INDEX IF NOT EXISTS bench_orders_created ON bench_orders (created_at);
