# Loads vagrant/Vagrantfile with a stand-in for Vagrant that records what it defines, and prints it as
# JSON: the box and each machine with its hostname and networks. Everything else is accepted and ignored.
require "json"

class Ignored
  def method_missing(*)
    yield Ignored.new if block_given?
    Ignored.new
  end

  def respond_to_missing?(*)
    true
  end
end

class VmConfig < Ignored
  def initialize(store, machines)
    @store = store
    @machines = machines
  end

  def box=(value)
    @store[:box] = value
  end

  def hostname=(value)
    @store[:hostname] = value
  end

  def network(kind, **opts)
    (@store[:networks] ||= []) << { kind: kind }.merge(opts)
  end

  def define(name)
    node = { name: name }
    @machines << node
    yield Struct.new(:vm).new(VmConfig.new(node, @machines))
  end
end

TOP = {}
MACHINES = []
module Vagrant
  def self.configure(_version)
    yield Struct.new(:vm).new(VmConfig.new(TOP, MACHINES))
  end
end

ENV["PGREP_SSH_PUBKEY"] ||= "/nonexistent"
$stderr = File.open(File::NULL, "w") # the missing-key warning
load ARGV.fetch(0)
puts JSON.generate(box: TOP[:box], machines: MACHINES)
