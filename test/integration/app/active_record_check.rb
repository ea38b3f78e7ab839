# A real Rails-style client of the database.yml that pgrep app-config printed (ARGV[0]).
# Prints one JSON object with what it observed; the test decides what is right.
require "active_record"
require "erb"
require "json"
require "yaml"

ENV["RAILS_ENV"] = "production"
# What new Rails 6.1 applications set, and Rails 7's only behaviour.
ActiveRecord::Base.legacy_connection_handling = false if ActiveRecord::Base.respond_to?(:legacy_connection_handling=)
ActiveRecord::Base.configurations = YAML.safe_load(ERB.new(File.read(ARGV.fetch(0))).result, aliases: true)

class ApplicationRecord < ActiveRecord::Base
  self.abstract_class = true
  connects_to database: { writing: :primary, reading: :primary_replica }
end

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
