"""Pure functions behind the console's callbacks: values in, values out, no Dash or I/O."""
