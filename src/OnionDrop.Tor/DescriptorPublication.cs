using OnionDrop.Tor.Control;

namespace OnionDrop.Tor;

/// <summary>
/// Follows one tor run's descriptor uploads for one onion service (HS_DESC events) and tells when the service
/// is published: once every HSDir that tor uploaded to has answered, at least one of them accepting it.
/// </summary>
/// <remarks>
/// tor's first UPLOADED alone (one HSDir accepted) was not enough after a restart: a client that had the
/// previous run's descriptor, its intro points now dead, asked another responsible HSDir for a new one, and that
/// HSDir, not yet updated, handed back the old one again. On the private test network 4 uploads in 6 failed so,
/// right after "published". Publication is not undone by later uploads (tor re-publishes routinely), only
/// by a new tor run (a new instance of this class).
/// </remarks>
public sealed class DescriptorPublication(string onionAddress)
{
    private readonly string _address = onionAddress.EndsWith(".onion", StringComparison.Ordinal) ? onionAddress[..^".onion".Length] : onionAddress;
    private readonly Dictionary<string, int> _unanswered = new(StringComparer.OrdinalIgnoreCase);
    private bool _accepted;

    /// <summary>Whether the first round of uploads has been answered, at least one accepted; stays true once it is.</summary>
    public bool Published { get; private set; }

    /// <summary>Uploads of this run still unanswered (for the operator's debug log while waiting).</summary>
    public int Unanswered => _unanswered.Values.Sum();

    /// <summary>Takes any HS_DESC event; returns true when this one made the service published.</summary>
    public bool Observe(HsDescEvent e)
    {
        if (Published || !string.Equals(e.Address, _address, StringComparison.OrdinalIgnoreCase)) return false;
        var hsDir = Fingerprint(e.HsDir);
        switch (e.Action)
        {
            case "UPLOAD":
                _unanswered[hsDir] = _unanswered.GetValueOrDefault(hsDir) + 1;
                return false;
            case "UPLOADED":
                _accepted = true;
                Answered(hsDir);
                break;
            case "FAILED":
                Answered(hsDir);
                break;
            default:
                return false;
        }
        return Published = _accepted && _unanswered.Count == 0;
    }

    private void Answered(string hsDir)
    {
        if (!_unanswered.TryGetValue(hsDir, out var n)) return;
        if (n <= 1) _unanswered.Remove(hsDir);
        else _unanswered[hsDir] = n - 1;
    }

    /// <summary>"$FINGERPRINT~nickname" or "$FINGERPRINT=nickname" → "$FINGERPRINT": the nickname part may differ between events.</summary>
    private static string Fingerprint(string hsDir)
    {
        var end = hsDir.IndexOfAny(['~', '=']);
        return end < 0 ? hsDir : hsDir[..end];
    }
}
