# A real Rails-style client of the database.yml that pgrep app-config printed (ARGV[0]).
# Prints one JSON object with what it observed; the test decides what is right.
require_relative "boot"

pgrep_connect(ARGV.fetch(0))

class Item < ApplicationRecord; end

out = {}
ApplicationRecord.connection.execute("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text)")
Item.create!(name: ARGV.fetch(1))
out[:writing_in_recovery] = ApplicationRecord.connection.select_value("SELECT pg_is_in_recovery()")
out[:writing_server] = ApplicationRecord.connection.select_value("SELECT host(inet_server_addr())")

ApplicationRecord.connected_to(role: :reading) do
  out[:reading_in_recovery] = ApplicationRecord.connection.select_value("SELECT pg_is_in_recovery()")
  out[:reading_server] = ApplicationRecord.connection.select_value("SELECT host(inet_server_addr())")
  deadline = Time.now + 20
  sleep 0.1 until Item.where(name: ARGV.fetch(1)).exists? || Time.now > deadline
  out[:replicated] = Item.where(name: ARGV.fetch(1)).exists?
  begin
    Item.create!(name: "written while reading")
    out[:write_while_reading] = "succeeded"
  rescue => e
    out[:write_while_reading] = e.class.name
  end
end
puts JSON.generate(out)
