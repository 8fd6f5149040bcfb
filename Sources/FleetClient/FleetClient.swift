// FleetClient
