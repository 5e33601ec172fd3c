"""Outside systems behind one small interface each; the sandbox adapters are complete
implementations that record or sign exactly what a real provider would."""
