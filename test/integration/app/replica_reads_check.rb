# A Rack application behind the middleware that pgrep's Rails initializer inserts, with the database.yml
# pgrep wrote: ARGV[0] is the application's directory (config/database.yml, config/initializers/…).
# ARGV[1]: "sticky" (write, read at once, read after the delay) or "read" (one GET from a new session).
# ARGV[2]: the item name to look for. Prints one JSON object per request; the test decides what is right.
require_relative "boot"
require "action_dispatch"
require "rack/mock"

dir, mode, name = ARGV.fetch(0), ARGV.fetch(1), ARGV.fetch(2)
pgrep_connect(File.join(dir, "config/database.yml"))

class Item < ApplicationRecord; end

# Just enough of a Rails application for the initializer to insert its middleware, as Rails would.
module Rails
  class << self
    attr_accessor :application
  end
end
inserted = []
middleware = Object.new
middleware.define_singleton_method(:use) { |*args| inserted << args }
Rails.application = Struct.new(:config).new(Struct.new(:middleware).new(middleware))
load File.join(dir, "config/initializers/pgrep_replica_reads.rb")
raise "the initializer inserted #{inserted.length} middlewares" unless inserted.length == 1

app = lambda do |env|
  if env["REQUEST_METHOD"] == "POST"
    Item.create!(name: name)
  end
  c = ApplicationRecord.connection
  body = {
    method: env["REQUEST_METHOD"],
    in_recovery: c.select_value("SELECT pg_is_in_recovery()"),
    server: c.select_value("SELECT host(inet_server_addr())"),
    sees_item: Item.where(name: name).exists?,
  }
  [200, { "content-type" => "application/json" }, [JSON.generate(body)]]
end
klass, *args = inserted.first
stack = klass.new(app, *args)

session = {}
request = lambda do |method|
  env = Rack::MockRequest.env_for("/", method: method)
  env["rack.session"] = session
  _, _, body = stack.call(env)
  puts body.join
end

ApplicationRecord.connection.execute("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text)")
case mode
when "sticky"
  request.call("POST")
  request.call("GET")
  sleep Float(ENV.fetch("STICKY_SECONDS")) + 0.5
  request.call("GET")
when "read"
  request.call("GET")
else
  raise "unknown mode #{mode}"
end
