using Microsoft.Extensions.Logging;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// Keeps ASP.NET Core's per-request logging (paths, hosts, sizes, timings: an access log) off, whatever the
/// "Logging" configuration says. Plain filter rules are not enough: a provider's own rule (say
/// Logging:Console:LogLevel:Default = Trace) outranks them and would turn the access log back on. So every rule,
/// the operator's included, carries this filter as well, and whichever rule a logger ends up with enforces it.
/// </summary>
internal static class NoAccessLog
{
    /// <summary>Categories (and those under them) and the least severe level that may still pass; None: nothing.</summary>
    private static readonly (string Category, LogLevel Least)[] Quiet =
    [
        ("Microsoft.AspNetCore", LogLevel.Warning),
        ("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None),
        ("Microsoft.AspNetCore.Routing", LogLevel.None),
        ("Microsoft.AspNetCore.Server.Kestrel.BadRequests", LogLevel.None),
        ("Microsoft.AspNetCore.Server.Kestrel.Connections", LogLevel.None),
        ("Microsoft.AspNetCore.Server.Kestrel.Http2", LogLevel.None),
    ];

    public static bool Allows(string? category, LogLevel level)
    {
        if (category is null) return true;
        var least = LogLevel.Trace;
        var matched = -1;
        foreach (var (quiet, min) in Quiet)
            if (quiet.Length > matched && category.StartsWith(quiet, StringComparison.Ordinal) && (category.Length == quiet.Length || category[quiet.Length] == '.'))
                (least, matched) = (min, quiet.Length);
        return least != LogLevel.None && level >= least;
    }

    /// <summary>Adds the filter to every rule, and a first catch-all rule (which any other outranks) so that no logger goes without it.</summary>
    public static void Enforce(LoggerFilterOptions options)
    {
        var rules = options.Rules.Select(r => new LoggerFilterRule(r.ProviderName, r.CategoryName, r.LogLevel, With(r.Filter))).ToList();
        options.Rules.Clear();
        options.Rules.Add(new LoggerFilterRule(null, null, options.MinLevel, With(null)));
        foreach (var rule in rules) options.Rules.Add(rule);
    }

    private static Func<string?, string?, LogLevel, bool> With(Func<string?, string?, LogLevel, bool>? filter) =>
        filter is null
            ? (_, category, level) => Allows(category, level)
            : (provider, category, level) => Allows(category, level) && filter(provider, category, level);
}
