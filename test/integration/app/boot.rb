# What every check application shares: ActiveRecord loaded as Rails loads it, the database.yml that
# pgrep app-config printed (its path given), and the model base class of Rails 6+ multiple databases.
require "active_record"
require "erb"
require "yaml"

def pgrep_connect(database_yml)
  ENV["RAILS_ENV"] = "production"
  # What new Rails 6.1 applications set, and Rails 7's only behaviour.
  ActiveRecord::Base.legacy_connection_handling = false if ActiveRecord::Base.respond_to?(:legacy_connection_handling=)
  # Rails runs ERB, then YAML, with json not yet loaded: the file must not need it.
  ActiveRecord::Base.configurations = YAML.safe_load(ERB.new(File.read(database_yml)).result, aliases: true)
  require "json"
  # Named first: ActiveRecord refuses connects_to on an anonymous class.
  Object.const_set(:ApplicationRecord, Class.new(ActiveRecord::Base))
  ApplicationRecord.abstract_class = true
  ApplicationRecord.connects_to database: { writing: :primary, reading: :primary_replica }
end
