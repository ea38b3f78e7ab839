# A Rails-style application that keeps writing through a failover, with the database.yml that
# pgrep app-config printed once (ARGV[0]) and never again. Each loop is one request: a connection is
# checked out of the pool, one row written, the connection returned (what Rails' executor does around a
# request). A request that fails is retried by the next one, as a user would. Runs until the file ARGV[1]
# exists, then prints one JSON line: the acknowledged ids in order, with the server and time of each.
require_relative "boot"

pgrep_connect(ARGV.fetch(0))
$stdout.sync = true

class Acked < ApplicationRecord
  self.table_name = "acked_through_failover"
end

stop = ARGV.fetch(1)
acked = []
errors = Hash.new(0)
last_error = ""
attempt = 0
until File.exist?(stop)
  # Each attempt its own id: a commit whose answer was lost in the crash is on the new primary, and its
  # retry must not fail as a duplicate.
  attempt += 1
  begin
    server = ApplicationRecord.connection.select_value("INSERT INTO acked_through_failover (id) VALUES (#{attempt}) RETURNING host(inet_server_addr())")
    acked << [attempt, server, Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)]
  rescue ActiveRecord::ActiveRecordError => e
    errors[e.class.name] += 1
    last_error = e.message.lines.first.to_s.strip
    sleep 0.05
  ensure
    ActiveRecord::Base.connection_handler.clear_active_connections!
  end
  # Progress for the test to wait on: how many were acknowledged, the last one's server, the last error.
  File.write("#{stop}.progress", "#{acked.size} #{acked.last&.at(1)} #{last_error}")
end
puts JSON.generate({ acked: acked, errors: errors })
