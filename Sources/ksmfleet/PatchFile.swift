import FleetAPI
import Foundation
import KSMCore
import KSMNode

/// Reads a config change from a JSON file (`ConfigFile`; a YAML file is refused as such), with
/// the fields of `ConfigPatch` (unknown fields refused, with the field named).
enum PatchFile {
    static func load(path: String) throws(CLIError) -> ConfigPatch {
        let value: JSONValue
        do throws(ConfigFileError) {
            value = try ConfigFile.value(path: path)
        } catch {
            throw .usage("--file: \(error.description)")
        }
        do throws(InputError) {
            return try StrictJSON.decode(ConfigPatch.self, from: value)
        } catch {
            throw .usage("--file \(path): \(error.description)")
        }
    }
}
