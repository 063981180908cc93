using System.Reflection;
using OnionDrop.Bench;

var benchmarks = Assembly.GetExecutingAssembly().GetTypes()
    .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && t is { IsInterface: false, IsAbstract: false })
    .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
    .OrderBy(b => b.Name)
    .ToDictionary(b => b.Name);

if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var chosen))
{
    Console.Error.WriteLine("usage: oniondrop-bench NAME [ARGS...]");
    foreach (var b in benchmarks.Values) Console.Error.WriteLine($"  {b.Name,-12} {b.Description}");
    return args.Length == 0 ? 0 : 2;
}
var missing = chosen.Tools(args[1..]).Where(t => !OnPath(t)).ToList();
if (missing.Count > 0)
{
    Console.Error.WriteLine($"oniondrop-bench {chosen.Name}: needs {string.Join(", ", missing)}, not found on this machine; scripts/setup-deps installs them");
    return 2;
}
return await chosen.RunAsync(args[1..]);

static bool OnPath(string tool) => Path.IsPathRooted(tool)
    ? File.Exists(tool)
    : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Any(d => File.Exists(Path.Combine(d, tool)));
