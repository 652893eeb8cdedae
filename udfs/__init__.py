"""Pure Python logic used by Vigil's Flink jobs, with thin PyFlink adapters beside it."""
