using System.Security.Cryptography;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// The HTTP Date header every response carries: the day, never the time. Kestrel writes the clock to the second
/// unless told otherwise (here, and in <see cref="KestrelDate"/> for its own responses), and a server clock that
/// drifts is a fingerprint that can link the onion service to a host seen elsewhere. The day alone hides the
/// seconds, except at the moment it turns: so each day turns at a secret random moment up to
/// <see cref="MaxLag"/> after midnight (UTC), and the time of the turn says nothing about the clock unless
/// watched over years.
/// </summary>
public sealed class ResponseDate(Func<DateTimeOffset> clock, Func<DateOnly, TimeSpan> lagOf)
{
    public static readonly TimeSpan MaxLag = TimeSpan.FromHours(2);

    /// <summary>The daemon's: the system clock, a fresh random lag each day.</summary>
    public static ResponseDate Shared { get; } = new(() => DateTimeOffset.UtcNow, RandomLag());

    /// <summary>The header's value, e.g. "Wed, 02 Dec 2026 00:00:00 GMT".</summary>
    public string Value() => ShownDay().ToString("R");

    /// <summary>Midnight (UTC) of the day shown.</summary>
    public DateTimeOffset ShownDay()
    {
        var now = clock().UtcDateTime;
        var shown = DateOnly.FromDateTime(now - lagOf(DateOnly.FromDateTime(now)));
        return new DateTimeOffset(shown.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
    }

    /// <summary>A lag drawn at random the first time a day is asked about, then kept for that day.</summary>
    internal static Func<DateOnly, TimeSpan> RandomLag()
    {
        var current = (Day: DateOnly.MinValue, Lag: TimeSpan.Zero);
        var gate = new Lock();
        return day =>
        {
            lock (gate)
            {
                if (current.Day != day)
                    current = (day, TimeSpan.FromSeconds(RandomNumberGenerator.GetInt32((int)MaxLag.TotalSeconds)));
                return current.Lag;
            }
        };
    }
}
