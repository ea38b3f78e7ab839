# What the real consumers make of app-config's output, as JSON: Rails' (and octopus') ERB then YAML for a
# file, libpq's parse (through the pg gem) for a connection URI.
require "erb"
require "yaml"

mode, arg = ARGV
case mode
when "yaml"
  # Only what Rails has loaded when it reads database.yml (ERB and YAML): json comes after the ERB ran.
  loaded = YAML.safe_load(ERB.new(File.read(arg)).result, aliases: true)
  require "json"
  puts JSON.generate(loaded)
when "conninfo"
  require "json"
  require "pg"
  puts JSON.generate(PG::Connection.conninfo_parse(arg).select { |o| o[:val] }.to_h { |o| [o[:keyword], o[:val]] })
else
  abort "usage: read.rb yaml FILE | conninfo URI"
end
