using System.Collections;
using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using OnionDrop.Daemon.Hosting;

namespace OnionDrop.Cli;

/// <summary>A configuration mistake, told in one line that names the bad entry.</summary>
public sealed class ConfigurationError(string message) : Exception(message);

/// <summary>
/// Layers the daemon's settings: built-in defaults &lt; config file &lt; environment &lt; command-line flags.
/// <list type="bullet">
/// <item>Config file: JSON (comments allowed), section "OnionDrop"; --config FILE, else $ONIONDROP_CONFIG,
/// else /etc/oniondrop/oniondrop.json if it exists.</item>
/// <item>Environment: ONIONDROP_&lt;SETTING&gt;, the setting's name in any case with optional underscores
/// between words (ONIONDROP_DATA_DIR, ONIONDROP_DataDir); a list either indexed (ONIONDROP_RECIPIENTS__0)
/// or in one variable, one item per line (recipients may also be separated by commas or spaces).</item>
/// </list>
/// A list set by a higher layer replaces the lower layer's list as a whole (.NET would merge by index,
/// which would silently keep an old recipient). Unknown settings are refused: a typo must not pass for a default.
/// </summary>
public static partial class OnionDropConfiguration
{
    public const string DefaultConfigFile = "/etc/oniondrop/oniondrop.json";
    public const string EnvPrefix = "ONIONDROP_";
    public const string ConfigFileVariable = "ONIONDROP_CONFIG";

    /// <summary>ONIONDROP_ variables that are not daemon settings: the config file's name, and keygen/open/fetch's passphrase.</summary>
    private static readonly HashSet<string> NotSettings = new([ConfigFileVariable, "ONIONDROP_PASSPHRASE"], StringComparer.OrdinalIgnoreCase);

    private static readonly string Section = OnionDropOptions.Section;

    /// <summary>The config file's top-level sections: the daemon's settings, and the operator's log levels.</summary>
    private static readonly HashSet<string> FileSections = new([Section, "Logging"], StringComparer.OrdinalIgnoreCase);

    /// <summary>Setting names (OnionDropOptions' properties) by their name with underscores removed, any case.</summary>
    private static readonly Dictionary<string, PropertyInfo> Settings =
        typeof(OnionDropOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite)
            .ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);

    private static bool IsList(PropertyInfo p) => p.PropertyType != typeof(string) && typeof(IEnumerable).IsAssignableFrom(p.PropertyType);

    /// <summary>The command-line layer: only the flags actually given.</summary>
    public sealed record Flags(string? DataDir = null, IReadOnlyList<string>? Recipients = null, string? Listen = null, string? Tor = null);

    public sealed record Loaded(IConfigurationRoot Configuration)
    {
        /// <summary>Binds the options as the daemon will, turning binder errors into one clear line.</summary>
        public OnionDropOptions Options()
        {
            // Unknown names are refused inside sections too: a misspelt Retention:DeleteAfter would quietly keep
            // the default, deleting each submission at its first acknowledgement.
            try { return Configuration.GetSection(Section).Get<OnionDropOptions>(o => o.ErrorOnUnknownConfiguration = true) ?? new OnionDropOptions(); }
            catch (InvalidOperationException e)
            {
                // "Failed to convert configuration value '…' at 'OnionDrop:Tor' to type '…'."
                if (BadValue().Match(e.Message) is { Success: true } bad)
                    throw new ConfigurationError($"bad value '{bad.Groups[1].Value}' for {bad.Groups[2].Value}");
                // "… the following properties were not found on the instance of OnionDrop….RetentionOptions: 'DeleteAftr'"
                if (UnknownNames().Match(e.Message) is { Success: true } unknown)
                    throw new ConfigurationError($"unknown setting(s) {unknown.Groups[2].Value} in {SectionOf(unknown.Groups[1].Value)}");
                throw new ConfigurationError(e.Message);
            }
        }
    }

    [GeneratedRegex(@"value '(.*)' at '([^']*)'")]
    private static partial Regex BadValue();

    [GeneratedRegex(@"not found on the instance of (\S+): (.+)$")]
    private static partial Regex UnknownNames();

    /// <summary>"OnionDrop:Retention" for the type of OnionDropOptions.Retention; the type's name for anything else.</summary>
    private static string SectionOf(string typeName) =>
        typeName == typeof(OnionDropOptions).FullName ? Section
        : Settings.Values.FirstOrDefault(p => p.PropertyType.FullName == typeName) is { } p ? $"{Section}:{p.Name}" : typeName;

    public static Loaded Load(string? configFile, Flags flags, IDictionary? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariables();
        var file = ChooseFile(configFile, environment);
        var layers = new[]
        {
            file is null ? [] : FileLayer(file),
            EnvironmentLayer(environment),
            FlagLayer(flags),
        };
        var merged = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var layer in layers)
        {
            // A list set here replaces the whole list from below.
            foreach (var list in layer.Keys.Select(ListOf).OfType<string>().Distinct(StringComparer.OrdinalIgnoreCase).ToList())
                foreach (var key in merged.Keys.Where(k => ListOf(k) is { } l && l.Equals(list, StringComparison.OrdinalIgnoreCase)).ToList())
                    merged.Remove(key);
            foreach (var (k, v) in layer) merged[k] = v;
        }
        return new Loaded(new ConfigurationBuilder().AddInMemoryCollection(merged).Build());
    }

    private static string? ChooseFile(string? configFile, IDictionary environment)
    {
        var explicitFile = configFile ?? environment[ConfigFileVariable] as string;
        if (!string.IsNullOrEmpty(explicitFile))
        {
            var full = Path.GetFullPath(explicitFile);
            if (!File.Exists(full)) throw new ConfigurationError($"config file {full} not found");
            return full;
        }
        return File.Exists(DefaultConfigFile) ? DefaultConfigFile : null;
    }

    /// <summary>
    /// "OnionDrop:Recipients:2" → "OnionDrop:Recipients", "OnionDrop:Retention:Journalists:0" → "OnionDrop:Retention:Journalists";
    /// null for a key that is not part of a list setting.
    /// </summary>
    private static string? ListOf(string key)
    {
        var parts = key.Split(':');
        if (parts.Length < 2 || !parts[0].Equals(Section, StringComparison.OrdinalIgnoreCase) || !Settings.TryGetValue(parts[1], out var p)) return null;
        if (IsList(p)) return $"{Section}:{p.Name}";
        return parts.Length >= 3 && Inner(p, parts[2]) is { } inner && IsList(inner) ? $"{Section}:{p.Name}:{inner.Name}" : null;
    }

    /// <summary>A setting inside a section (Retention's Journalists), by its name in any case.</summary>
    private static PropertyInfo? Inner(PropertyInfo section, string name) =>
        section.PropertyType.GetProperty(name, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);

    /// <summary>A setting with nothing inside it: a string, a number, an enum, a TimeSpan.</summary>
    private static bool IsPlain(PropertyInfo p) => p.PropertyType == typeof(string) || p.PropertyType.IsValueType;

    private static Dictionary<string, string?> FileLayer(string file)
    {
        IConfigurationRoot root;
        try { root = new ConfigurationBuilder().AddJsonFile(file, optional: false, reloadOnChange: false).Build(); }
        catch (Exception e) when (e is FormatException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            // The JSON parser's own message carries the line; the provider's wrappers only say "could not parse".
            var inner = e;
            while (inner.InnerException is not null && inner is not System.Text.Json.JsonException) inner = inner.InnerException;
            var why = inner is System.Text.Json.JsonException ? "not valid JSON: " + inner.Message : inner.Message;
            throw new ConfigurationError($"config file {file}: {why.Split('\n')[0].Trim()}");
        }
        var layer = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in root.AsEnumerable())
        {
            var parts = key.Split(':');
            // A setting put beside the section instead of in it ("Retention" at the top) would be ignored.
            if (!FileSections.Contains(parts[0]))
                throw new ConfigurationError($"config file {file}: unknown section \"{parts[0]}\" (settings go in \"{Section}\"; the log's levels in \"Logging\")");
            if (parts[0].Equals(Section, StringComparison.OrdinalIgnoreCase) && parts.Length >= 2 && !Settings.ContainsKey(parts[1]))
                throw new ConfigurationError($"config file {file}: unknown setting {Section}:{parts[1]} (known: {string.Join(", ", Settings.Keys)})");
            // The host reads the levels only once it builds its logging: a bad one then exited 1, after the data directory was made.
            if (parts[0].Equals("Logging", StringComparison.OrdinalIgnoreCase) && parts.Length >= 3
                && parts[^2].Equals("LogLevel", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrEmpty(value) && !Enum.TryParse<LogLevel>(value, true, out _))
                throw new ConfigurationError($"config file {file}: {key}: '{value}' is not a log level (Trace, Debug, Information, Warning, Error, Critical or None)");
            // Beside the file, not wherever the command runs: "/" under systemd, the operator's home for `oniondrop status`.
            if (IsPath(key, value)) layer[key] = Path.GetFullPath(value!, Path.GetDirectoryName(file)!);
            else if (value is not null) layer[key] = value;
        }
        return layer;
    }

    private static Dictionary<string, string?> EnvironmentLayer(IDictionary environment)
    {
        var layer = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry e in environment)
        {
            var name = (string)e.Key;
            if (!name.StartsWith(EnvPrefix, StringComparison.OrdinalIgnoreCase) || NotSettings.Contains(name))
                continue;
            var value = e.Value as string ?? "";
            var path = name[EnvPrefix.Length..].Split("__");
            if (!Settings.TryGetValue(path[0].Replace("_", ""), out var setting))
                throw new ConfigurationError($"environment: {name} is not a setting (known: {string.Join(", ", Settings.Keys.Select(k => EnvPrefix + Snake(k)))})");
            var key = $"{Section}:{setting.Name}";
            var nested = path[1..].Select(p => p.Replace("_", "")).ToArray();
            // The binder would ignore it without a word: ONIONDROP_DATA_DIR__X=1 is a mistake, not a setting.
            if (nested.Length > 0 && IsPlain(setting))
                throw new ConfigurationError($"environment: {name}: {setting.Name} has no settings inside it (set {EnvPrefix}{Snake(setting.Name)} itself)");
            if (nested.Length == 1 && !IsList(setting) && Inner(setting, nested[0]) is { } innerList && IsList(innerList))
                // A list inside a section in one variable, one item per line, as at the top: ONIONDROP_RETENTION__JOURNALISTS.
                AddList(layer, $"{key}:{innerList.Name}", SplitList(innerList, value));
            else if (nested.Length > 0)
                // Nested names (Retention__MAX_AGE_DAYS) and indexes (Recipients__0); the binder ignores case.
                layer[key + ":" + string.Join(':', nested)] = value;
            else if (IsList(setting))
                AddList(layer, key, SplitList(setting, value));
            else
                // A relative path from the working directory, as --data-dir: made absolute now, as the other layers'.
                layer[key] = IsPath(key, value) ? Path.GetFullPath(value) : value;
        }
        return layer;
    }

    private static readonly string[] PathSettings = [nameof(OnionDropOptions.DataDir), nameof(OnionDropOptions.TorrcTemplate),
        nameof(OnionDropOptions.WebSocketDirectory), nameof(OnionDropOptions.SystemTorControlSocket)];

    /// <summary>A setting naming a file or folder. TorPath only with a '/': a bare "tor" is looked up in PATH.</summary>
    private static bool IsPath(string key, string? value) =>
        !string.IsNullOrEmpty(value) && key.StartsWith(Section + ":", StringComparison.OrdinalIgnoreCase) && key[(Section.Length + 1)..] is var name
        && (PathSettings.Contains(name, StringComparer.OrdinalIgnoreCase)
            || name.Equals(nameof(OnionDropOptions.TorPath), StringComparison.OrdinalIgnoreCase) && value.Contains('/'));

    private static IEnumerable<string> SplitList(PropertyInfo setting, string value) =>
        value.Split(setting.Name == nameof(OnionDropOptions.Recipients) ? [',', ' ', '\t', '\n', '\r'] : ['\n', '\r'],
            StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static Dictionary<string, string?> FlagLayer(Flags flags)
    {
        var layer = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (flags.DataDir is { } d) layer[$"{Section}:{nameof(OnionDropOptions.DataDir)}"] = Path.GetFullPath(d);
        if (flags.Recipients is { Count: > 0 } r) AddList(layer, $"{Section}:{nameof(OnionDropOptions.Recipients)}", r);
        if (flags.Listen is { } l) layer[$"{Section}:{nameof(OnionDropOptions.Listen)}"] = l;
        if (flags.Tor is { } t) layer[$"{Section}:{nameof(OnionDropOptions.Tor)}"] = t;
        return layer;
    }

    private static void AddList(Dictionary<string, string?> layer, string key, IEnumerable<string> items)
    {
        var i = 0;
        foreach (var item in items) layer[$"{key}:{i++}"] = item;
    }

    /// <summary>DataDir → DATA_DIR, for messages and docs.</summary>
    public static string Snake(string name) => string.Concat(name.Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : char.ToUpperInvariant(c).ToString()));
}
