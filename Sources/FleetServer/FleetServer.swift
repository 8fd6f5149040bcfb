// FleetServer
